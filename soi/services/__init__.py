"""Service functions behind the HTTP routes and the CLI."""

from soi.services.audit import MAX_AUDIT_EVENTS, audit_trail
from soi.services.health import check_health
from soi.services.results import (
    DocumentUnavailableError,
    ResultDocument,
    ResultDocumentKind,
    ResultNotFoundError,
    ResultsError,
    result_document,
    study_results,
)
from soi.services.signin import (
    SessionPolicy,
    SignedIn,
    authenticate_session,
    authenticate_token,
    sign_in,
    sign_out,
)
from soi.services.studies import list_study_page, study_detail
from soi.services.users import (
    MAX_TOKEN_DAYS,
    IssuedToken,
    TokenSummary,
    UserSummary,
    change_password,
    create_user,
    issue_token,
    list_user_summaries,
    list_user_tokens,
    revoke_user_token,
    service_account_token,
    set_user_disabled,
)

__all__ = [
    "MAX_AUDIT_EVENTS",
    "MAX_TOKEN_DAYS",
    "DocumentUnavailableError",
    "IssuedToken",
    "ResultDocument",
    "ResultDocumentKind",
    "ResultNotFoundError",
    "ResultsError",
    "SessionPolicy",
    "SignedIn",
    "TokenSummary",
    "UserSummary",
    "audit_trail",
    "authenticate_session",
    "authenticate_token",
    "change_password",
    "check_health",
    "create_user",
    "issue_token",
    "list_study_page",
    "list_user_summaries",
    "list_user_tokens",
    "result_document",
    "revoke_user_token",
    "service_account_token",
    "set_user_disabled",
    "sign_in",
    "sign_out",
    "study_detail",
    "study_results",
]
