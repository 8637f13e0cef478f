"""Lambda layers: third-party dependencies per layer, built with pip for the Lambda platform."""
