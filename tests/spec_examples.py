"""Documents quoted from ../shared/SPEC.md, shared by the unit and end-to-end tests."""

# SPEC §2, verbatim: the purchase approval flow from the customer's guide.
PURCHASE_APPROVAL_JSON = """
{
  "name": "purchase-approval",
  "description": "Multi-level PO approval",
  "category": "approval",
  "sla_hours": 72,
  "input_schema": {"type": "object", "required": ["amount"],
                   "properties": {"amount": {"type": "number"}}},
  "nodes": [
    {"id": "manager_approval", "type": "approval", "name": "Manager Approval",
     "approver_role": "manager", "sla_hours": 24, "escalate_to_role": "director"},
    {"id": "amount_check", "type": "gateway", "name": "Check Amount"},
    {"id": "cfo_approval", "type": "approval", "approver_role": "cfo", "sla_hours": 48},
    {"id": "notify", "type": "service_task",
     "action": {"type": "http", "method": "POST",
                "url": "https://erp.example/po/{{ input.po_id }}/approved"},
     "retry": {"max_attempts": 5, "initial_interval": "PT1S", "backoff": 2.0,
               "max_interval": "PT30S"},
     "timeout": "PT30S"},
    {"id": "rejected", "type": "end", "status": "failed"},
    {"id": "done", "type": "end"}
  ],
  "routes": [
    {"from": "manager_approval", "to": "amount_check", "outcome": "approved"},
    {"from": "manager_approval", "to": "rejected", "outcome": "rejected"},
    {"from": "amount_check", "to": "cfo_approval", "condition": "input.amount > 10000"},
    {"from": "amount_check", "to": "notify", "default": true},
    {"from": "cfo_approval", "to": "notify", "outcome": "approved"},
    {"from": "cfo_approval", "to": "rejected", "outcome": "rejected"},
    {"from": "notify", "to": "done"}
  ],
  "triggers": [{"type": "event", "event": "po.created"}]
}
"""
