"""pica: knowledge-based visual question answering in the PICa / PromptCap style.

image -> caption -> nearest solved examples -> few-shot prompt -> LLM -> normalized answer.
Heavy libraries (torch, llama_cpp, faiss) are imported only when a component is built.
"""

__version__ = "0.1.0"
