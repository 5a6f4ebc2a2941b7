-- Busiest client addresses: requests, bytes sent and error responses.
SELECT client_ip, count(*) AS requests, sum(bytes) AS bytes, count_if(status >= 400) AS errors
FROM access_log
WHERE dt BETWEEN CAST(:since AS DATE) AND CAST(:until AS DATE) AND ts >= :since AND ts < :until
GROUP BY client_ip
ORDER BY requests DESC, client_ip
LIMIT 20
