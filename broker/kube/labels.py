"""The broker's label and annotation vocabulary on the objects it makes, and the token controller's on its own.

The janitor, start-up repair and legacy-token reuse find the broker's objects by these; an object without
MANAGED_BY was made by someone else and is never deleted.
"""

from __future__ import annotations

MANAGED_BY = {"app.kubernetes.io/managed-by": "kube-token-broker"}
ROLE_LABEL = "token-broker.io/role"
# on a binding Secret: the issuance it belongs to (start-up repair finds the Secret of a pending record by it)
TOKEN_ID_LABEL = "token-broker.io/token-id"
EXPIRES_ANNOTATION = "token-broker.io/expires-at"
CALLER_ANNOTATION = "token-broker.io/caller"
# annotation on a binding Secret naming the service account whose token is bound to it
BINDING_SA_ANNOTATION = "token-broker.io/service-account"
# label on legacy token Secrets the broker created, so it finds them again with a label selector
LEGACY_FOR_LABEL = "token-broker.io/legacy-token-for"

# the token controller's (pkg/controller/serviceaccount, legacytokentracking)
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
LEGACY_INVALID_LABEL = "kubernetes.io/legacy-token-invalid-since"
