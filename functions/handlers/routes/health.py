from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.logic.health import check_health
from functions.models.errors import StoreUnavailable
from functions.models.health import HealthReply
from functions.models.settings import get_settings

router = APIGatewayRouter()


@router.get("/v1/health")
def get_health() -> Response[HealthReply]:
    reply = check_health(get_settings())
    if reply.status == "ok":
        return Response(status_code=200, content_type="application/json", body=reply)
    # a store did not answer: the report says which; try again after the store's retry hint
    retry = {"Retry-After": str(StoreUnavailable.retry_after_seconds)}
    return Response(status_code=503, content_type="application/json", body=reply, headers=retry)
