"""The local cloud: the synthesized CDK template deployed into an embedded moto.

Nothing here lists the system's resources: everything comes from the cloud assembly
(template + asset manifest) that `python -m infra.app` writes.
"""
