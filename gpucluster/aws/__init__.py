"""The AWS back end: the Pulumi program's resources, cost estimates and the account preflight."""
