-- Sign-ins per day and country from the logins table: who (pseudonymous users), when, from where.
-- table: logins
SELECT
    CAST(date_trunc('day', ts) AS DATE) AS day,
    country,
    count(*) AS logins,
    count(DISTINCT username) AS users
FROM logins
WHERE dt BETWEEN CAST(:since AS DATE) AND CAST(:until AS DATE) AND ts >= :since AND ts < :until
GROUP BY 1, 2
ORDER BY 1, 3 DESC, 2
