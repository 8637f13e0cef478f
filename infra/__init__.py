"""The CDK app. Knows asset paths; never imports runtime code (functions/)."""

import os

# jsii warns on every start that Node 20 is past its end of life; synthesis itself works on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "20")
