"""The engine's size limits, in bytes (the ``CVG_MAX_*`` macros of
``converge.h``; FORMAT.md, "Limits"). At a limit the input is accepted; one
byte more raises the error named."""

#: Largest key (64 KiB); longer raises :class:`KeyTooLargeError`.
MAX_KEY_LEN = 65536

#: Largest register value or set element (16 MiB); larger raises
#: :class:`ValueTooLargeError`.
MAX_VALUE_LEN = 16777216

#: Largest encoded state of one key, and largest delta or state passed to a
#: merge (64 MiB). A write that would make a key's state larger raises
#: :class:`StateTooLargeError` and writes nothing; a larger merge payload
#: raises :class:`CorruptInputError`.
MAX_STATE_LEN = 67108864

#: Largest sync message (65 MiB): the default and ceiling of a session's
#: ``max_message``.
MAX_MESSAGE_LEN = 68157440
