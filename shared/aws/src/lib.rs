//! AWS adapters behind the ports of shared: Bedrock (Converse with a Guardrail, ApplyGuardrail), Knowledge Base Retrieve, STS per-session credentials, HealthLake control plane, Secrets Manager, KMS.
