"""Access to the served LLM: engine configuration and chat clients (OpenAI HTTP, Serve handle)."""
