from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "shop_recs.workers"
    label = "shop_recs_workers"
    verbose_name = "Recommendation workers"

    def ready(self) -> None:
        from django.utils.module_loading import import_string

        from shop_recs.catalog.conf import recs_settings

        if recs_settings.CELERY_APP:
            # creating the app makes it the current one, which @shared_task tasks then use
            import_string(recs_settings.CELERY_APP)
        # The catalog announces changes with signals; this layer turns them into queued tasks,
        # so the catalog never imports Celery.
        from shop_recs.workers import receivers  # noqa: F401
