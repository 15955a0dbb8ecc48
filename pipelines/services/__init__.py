"""Provider seams: ``services/<provider>/{stt,llm,tts}.py`` plus ``ENTRIES`` in each package."""
