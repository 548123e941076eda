"""The AWS back end: the Pulumi program's resources (one ComponentResource per concern), cost estimates and
the account preflight. The only package importing pulumi_aws; ``program.build`` is called by
``gpucluster.program`` for platform aws.
"""
