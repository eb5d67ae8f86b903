"""The root GraphQL schema: `hello` plus each app's Query and Mutation mixins."""

import graphene
from django.utils.module_loading import import_string

# One line per app. An app's mixin is a graphene.ObjectType holding its root fields; apps know
# nothing of one another (the cronjobs engine must not import crm), only this list names them.
QUERY_MIXINS = [
    "crm.schema.Query",
    "cronjobs.schema.Query",
]
MUTATION_MIXINS = [
    "crm.schema.Mutation",
    "cronjobs.schema.Mutation",
]


class Query(*(import_string(path) for path in QUERY_MIXINS), graphene.ObjectType):
    hello = graphene.String(default_value="Hello, GraphQL!", description="Public: needs no login.")


class Mutation(*(import_string(path) for path in MUTATION_MIXINS), graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation)
