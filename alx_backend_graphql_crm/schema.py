"""The root GraphQL schema: `hello` plus each app's Query and Mutation mixins."""

import graphene

import crm.schema
import cronjobs.schema
from alx_backend_graphql_crm.api.execution import Schema
from alx_backend_graphql_crm.api.permissions import describe_permissions

# One line per app. An app's mixin is a graphene.ObjectType holding its root fields; apps know
# nothing of one another (the cronjobs engine must not import crm): only this module names them.


class Query(crm.schema.Query, cronjobs.schema.Query, graphene.ObjectType):
    hello = graphene.String(default_value="Hello, GraphQL!", description="Public: needs no login.")


class Mutation(crm.schema.Mutation, cronjobs.schema.Mutation, graphene.ObjectType):
    pass


# Our Schema: graphene's, executing long lists of flat objects in one loop (api/execution.py).
schema = Schema(query=Query, mutation=Mutation)
describe_permissions(schema)
