-- Most requested pages, with how many distinct clients asked for each.
SELECT path, count(*) AS requests, count(DISTINCT client_ip) AS clients
FROM access_log
WHERE dt BETWEEN CAST(:since AS DATE) AND CAST(:until AS DATE) AND ts >= :since AND ts < :until AND path IS NOT NULL
GROUP BY path
ORDER BY requests DESC, path
LIMIT 20
