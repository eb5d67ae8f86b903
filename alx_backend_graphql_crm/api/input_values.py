"""GraphQL's check of the values written in a document, its refusals saying where the value is and what is accepted.

graphql-core's ValuesOfCorrectTypeRule says "DateTime cannot represent value: 'last week'" and no more:
with several filter entries or input fields a newcomer has to guess which one, and how to write it.
The same refusal here reads "filter.createdAtGte: DateTime cannot represent value: 'last week'; accepted:
an ISO 8601 date-time such as 2025-01-01T00:00:00Z, or a date such as 2025-01-01". Values sent as
variables are already named by graphql-core ('Variable "$f" got invalid value ... at "f.createdAtGte"').
"""

from graphql import GraphQLError, get_named_type
from graphql.validation import ValuesOfCorrectTypeRule

# How to write a value of each scalar, for the refusals' "accepted:" part.
ACCEPTED = {
    "DateTime": "an ISO 8601 date-time such as 2025-01-01T00:00:00Z, or a date such as 2025-01-01",
    "Decimal": 'a number or a numeric string such as "999.99"',
    "Int": "a whole number between -2147483648 and 2147483647",
    "Float": "a number",
    "Boolean": "true or false",
    "String": 'a string in double quotes, e.g. ["-stock", "name"] for a list',
    "ID": 'a global ID or an integer, e.g. "1"',
}


class NamedValuesOfCorrectTypeRule(ValuesOfCorrectTypeRule):
    """ValuesOfCorrectTypeRule whose refusal of a value names its argument and input fields, and says
    what the value's type accepts. Refusals of unknown or missing fields keep graphql-core's words,
    which already name the field."""

    def __init__(self, context):
        super().__init__(context)
        self.path: list[str] = []  # the argument and input fields around the value being checked
        self.checking = None  # the input type of the value being checked

    def enter_argument(self, node, *_args) -> None:
        self.path.append(node.name.value)

    def leave_argument(self, node, *_args) -> None:
        self.path.pop()

    def enter_object_field(self, node, *args) -> None:
        super().enter_object_field(node, *args)
        self.path.append(node.name.value)

    def leave_object_field(self, node, *_args) -> None:
        self.path.pop()

    def is_valid_value_node(self, node) -> None:
        self.checking = self.context.get_input_type()
        try:
            super().is_valid_value_node(node)
        finally:
            self.checking = None

    def report_error(self, error: GraphQLError) -> None:
        if self.checking is None:
            return super().report_error(error)  # a field unknown or missing: graphql-core's words name it
        message = error.message.rstrip(".")
        if self.path:
            message = f"{'.'.join(self.path)}: {message}"
        accepted = ACCEPTED.get(get_named_type(self.checking).name)
        if accepted:
            message = f"{message}; accepted: {accepted}"
        return super().report_error(GraphQLError(message, error.nodes, original_error=error.original_error))
