from django.apps import AppConfig


class KafkaBridgeConfig(AppConfig):
    name = "kafka_bridge"
    verbose_name = "Kafka bridge"
    default_auto_field = "django.db.models.BigAutoField"
