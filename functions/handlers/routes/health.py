from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.logic.health import check_health
from functions.models.health import HealthReply
from functions.models.settings import get_settings

router = APIGatewayRouter()


@router.get("/v1/health")
def get_health() -> Response[HealthReply]:
    reply = check_health(get_settings())
    return Response(status_code=200 if reply.status == "ok" else 503, content_type="application/json", body=reply)
