-- Distinct users and clients per day (the dt bound prunes whole days of partitions on every engine).
SELECT dt AS day, count(DISTINCT username) AS users, count(DISTINCT client_ip) AS clients, count(*) AS requests
FROM access_log
WHERE dt BETWEEN CAST(:since AS DATE) AND CAST(:until AS DATE) AND ts >= :since AND ts < :until
GROUP BY dt
ORDER BY day
