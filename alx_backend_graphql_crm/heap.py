"""A server process's start-up heap, loaded once and then kept out of the garbage collector's way.

A full collection (CPython's generation 2) walks every container object alive: in a worker that
has loaded Django, the apps and the GraphQL schema, ~85,000 objects, 40-55 ms on the machine the
bench runs on. It comes after enough objects have survived two younger collections, so a request
that keeps a thousand model instances alive (a 1,000-row bulkCreateCustomers) triggers one every
few calls and pays for the whole heap. Nothing loaded at start-up ever becomes garbage, so
``freeze_startup_heap`` moves it to the permanent generation (``gc.freeze``, Python's own advice
for pre-forking servers) and later full collections walk only what requests create.
"""

import gc


def freeze_startup_heap() -> int:
    """Load what every request needs (URLconf, views, the GraphQL schema), collect, freeze; how many objects froze."""
    from django.urls import get_resolver
    from graphene_django.settings import graphene_settings

    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and the views
    graphene_settings.SCHEMA  # noqa: B018 - imports and builds the schema
    gc.collect()  # what is garbage now is freed, not frozen for ever
    gc.freeze()
    return gc.get_freeze_count()
