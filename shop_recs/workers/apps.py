from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "shop_recs.workers"
    label = "shop_recs_workers"
    verbose_name = "Recommendation workers"

    def ready(self) -> None:
        # imported here, not at the top: an AppConfig module is imported before models load
        from shop_recs.conf import recs_settings

        # the settings object imports the dotted path: creating the app makes it the current
        # one, which @shared_task tasks then use
        _ = recs_settings.CELERY_APP
        # The catalog announces changes with signals; this layer turns them into queued tasks,
        # so the catalog never imports Celery.
        from shop_recs.workers import receivers  # noqa: F401
