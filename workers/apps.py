from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    label = "shop_recs_workers"
    verbose_name = "Recommendation workers"

    def ready(self) -> None:
        # The catalog announces changes with signals; this layer turns them into queued tasks,
        # so the catalog never imports Celery.
        from workers import receivers  # noqa: F401
