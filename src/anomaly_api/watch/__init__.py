"""``anomaly-api watch``: reads the user's data where it lives (Prometheus, MQTT), scores it
through the service's own stream path and writes the results back (metrics, MQTT, webhook)."""
