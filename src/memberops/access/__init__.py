"""Access: API keys, roles and what each role may do, and the audit trail."""
