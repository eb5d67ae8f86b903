"""Django's security middleware with the log lines an operator needs: redirects to HTTPS, disallowed hosts."""

import logging

from django.conf import settings

logger = logging.getLogger("alx_backend_graphql_crm.security")


def log_https_redirects(get_response):
    """Logs each plain-HTTP request that Django's SecurityMiddleware (after this one) redirects to HTTPS:
    with nothing in the log, a `make serve` tried on http://127.0.0.1 only ever answered 301s (issue 25).
    The first redirect of a process is a WARNING naming the setting; the rest are INFO."""
    warned = False

    def middleware(request):
        nonlocal warned
        response = get_response(request)
        location = response.get("Location", "") if response.status_code == 301 else ""
        if location.startswith("https://") and not request.is_secure() and settings.SECURE_SSL_REDIRECT:
            logger.log(
                logging.INFO if warned else logging.WARNING,
                "Redirected plain-HTTP %s %s to HTTPS (DJANGO_SECURE_SSL_REDIRECT is on: set it to 0 in .env to "
                "serve plain HTTP, or put a TLS proxy in front that sends X-Forwarded-Proto)",
                request.method,
                request.get_full_path(),
            )
            warned = True
        return response

    return middleware


class DisallowedHostLine(logging.Filter):
    """Django logs a request for a Host outside ALLOWED_HOSTS with its traceback and a hint naming
    ALLOWED_HOSTS; here it is one line naming the variable to set."""

    def filter(self, record):
        host = record.getMessage().split("'")[1] if "'" in record.getMessage() else "?"
        record.msg, record.args = (
            "Refused a request for host %r: not in DJANGO_ALLOWED_HOSTS (add it there, comma separated, in .env)",
            (host,),
        )
        record.exc_info = record.exc_text = None
        return True
