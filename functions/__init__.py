"""Code that runs in AWS Lambda: handlers -> logic -> dal, all sharing models."""
