"""Storage: rooted, sanitized paths; atomic writes; partial and resumable files.

The only package that opens, links or renames files holding user data. It imports the standard
library only (never ``daemon.protocol``); every function is synchronous and may block on fsync,
so async callers run it in a worker thread.

Modules: ``names`` (peer names -> safe components), ``dirfd`` (the no-follow, fd-relative choke
point), ``atomic`` (atomic replacement of whole files), ``partial`` and ``inbox`` (receiving),
``inbox_files`` (listing, reading and deleting what the inbox holds), ``shares`` and ``source``
(files to send), ``outbox`` (watched folders people drop files into), ``hashing``, ``space``.
"""

from .atomic import AtomicWriter as AtomicWriter
from .atomic import write_atomic as write_atomic
from .atomic import write_secret_file as write_secret_file
from .dirfd import UnsafePath as UnsafePath
from .hashing import sha256_file as sha256_file
from .inbox import Collision as Collision
from .inbox import DEFAULT_RESERVE as DEFAULT_RESERVE
from .inbox import Inbox as Inbox
from .inbox import InboxRules as InboxRules
from .inbox_files import InboxEntry as InboxEntry
from .names import UnsafeName as UnsafeName
from .names import numbered_name as numbered_name
from .names import sanitize_relpath as sanitize_relpath
from .names import validate_id as validate_id
from .outbox import Fingerprint as Fingerprint
from .outbox import OutboxDir as OutboxDir
from .outbox import SourceChanged as SourceChanged
from .outbox import SpooledFile as SpooledFile
from .outbox import spool_source as spool_source
from .partial import PartialFile as PartialFile
from .shares import ShareDir as ShareDir
from .shares import ShareFileWriter as ShareFileWriter
from .shares import ShareSpool as ShareSpool
from .source import LocalSources as LocalSources
from .source import SourceFile as SourceFile
from .space import free_bytes as free_bytes

__all__ = [
    "AtomicWriter",
    "Collision",
    "DEFAULT_RESERVE",
    "Fingerprint",
    "Inbox",
    "InboxEntry",
    "InboxRules",
    "LocalSources",
    "OutboxDir",
    "PartialFile",
    "ShareDir",
    "ShareFileWriter",
    "ShareSpool",
    "SourceChanged",
    "SourceFile",
    "SpooledFile",
    "UnsafeName",
    "UnsafePath",
    "free_bytes",
    "numbered_name",
    "sanitize_relpath",
    "sha256_file",
    "spool_source",
    "validate_id",
    "write_atomic",
    "write_secret_file",
]
