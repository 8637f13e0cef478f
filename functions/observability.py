"""The one place that creates the Powertools logger, tracer and metrics."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "stepwise"
NAMESPACE = "Stepwise"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
