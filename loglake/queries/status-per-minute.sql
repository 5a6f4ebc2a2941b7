-- Requests and 5xx errors per minute: the rate to alert on when the site goes down.
SELECT date_trunc('minute', ts) AS minute,
       count(*) AS requests,
       count_if(status >= 500) AS errors_5xx,
       round(CAST(count_if(status >= 500) AS double) * 100 / count(*), 2) AS pct_5xx
FROM access_log
WHERE dt BETWEEN CAST(:since AS DATE) AND CAST(:until AS DATE) AND ts >= :since AND ts < :until
GROUP BY date_trunc('minute', ts)
ORDER BY minute
