-- Distinct users and clients per day (dt is the partition column, so days prune whole folders).
SELECT dt AS day, count(DISTINCT username) AS users, count(DISTINCT client_ip) AS clients, count(*) AS requests
FROM access_log
WHERE ts >= :since AND ts < :until
GROUP BY dt
ORDER BY day
