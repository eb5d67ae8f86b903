"""The `crontab` command, extending django-crontab's."""
