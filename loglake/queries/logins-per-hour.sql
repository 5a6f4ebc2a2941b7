-- Distinct signed-in users per hour (by location when the table has that column).
-- optional-columns: location
SELECT date_trunc('hour', ts) AS hour, location, count(DISTINCT username) AS users, count(*) AS requests
FROM access_log
WHERE dt BETWEEN CAST(:since AS DATE) AND CAST(:until AS DATE) AND ts >= :since AND ts < :until AND username IS NOT NULL
GROUP BY date_trunc('hour', ts), location
ORDER BY hour, location
