"""The ids of the packaged template library, which the unit and e2e template tests both
expect (a template added or removed is a change to this list)."""

TEMPLATE_IDS = {
    "access-request",
    "alert-routing",
    "change-request",
    "customer-onboarding",
    "daily-report",
    "document-review",
    "document-signature",
    "employee-onboarding",
    "expense-report",
    "incident-escalation",
    "invoice-approval",
    "leave-request",
    "order-fulfilment",
    "purchase-approval",
    "refund",
    "vendor-onboarding",
}
