"""Fleet analytics: task scores bridged from Redis to Kafka, and Faust agents computing each patient's baseline
band, trend and deterioration flag across a whole deployment (``python -m fleet bridge`` / ``python -m fleet
worker``; installed with the ``fleet`` extra)."""
