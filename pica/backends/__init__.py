"""LLM backends: ``llama_cpp`` (local GGUF, default) and ``openai_compat`` (any OpenAI-style API)."""
