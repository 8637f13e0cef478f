"""The batch route served by the batch function (it reads Parquet parts; the API function carries
no pyarrow):

GET /v1/models/{name}/batch/{job}/rows/{row}[?column=COL]
    the job's scored row(s) whose pass-through column (the job's first unless `column` names
    one) is `row`: pass-through values, the feature values read again from the pinned input, the
    prediction and probabilities, the version and artifact sha256 that scored it, and the part
    holding it with the part's sha256 from the manifest.

The resolver is built like the API function's (validation, error handlers, the persona gate), so
the route answers as every other route does.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from functions.handlers.errors import install_error_handlers, parse_json_object
from functions.handlers.routes.batch import ColumnQuery, JobId, RowId
from functions.handlers.routes.identity import caller_identity
from functions.handlers.routes.params import Name, reply
from functions.logic import batch_run, personas
from functions.models.batch import RowExplanation
from functions.models.settings import get_settings
from functions.observability import logger


def persona_gate(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """A Cognito caller reaches the route only through a persona of its groups (as on the API function)."""
    event = resolver.current_event
    personas.check_route(
        get_settings(),
        caller_identity(event),
        f"{event.http_method} {event.resource}",
        path_parameters=dict(event.path_parameters or {}),
        cognito=bool(event.request_context.authorizer.claims),
        correlation_id=logger.get_correlation_id() or "",
    )
    return next_middleware(resolver)


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_object)
install_error_handlers(app)
app.use(middlewares=[persona_gate])


@app.get("/v1/models/<name>/batch/<job>/rows/<row>")
def explain_batch_row(name: Name, job: JobId, row: RowId, column: ColumnQuery = None) -> Response[RowExplanation]:
    return reply(batch_run.explain_row(get_settings(), name, job, row, column))
