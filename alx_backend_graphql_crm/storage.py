"""Static files storage for DEBUG off: whitenoise's compressed manifest storage, made quick to run again."""

import os

from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage


def _names_source_map(pattern) -> bool:
    return "sourceMappingURL" in (pattern if isinstance(pattern, str) else pattern[0])


class ReusingCompressor(Compressor):
    """Keeps a file's .br/.gz copies when they are already there for this very file.

    whitenoise writes each copy with its file's mtime, and collectstatic only rewrites a file that
    changed: a copy with the same mtime is up to date, so `make serve` does not compress every file
    again at each start (brotli on GraphiQL's megabyte of JavaScript alone takes seconds).
    """

    def compress(self, path):
        copies = [path + suffix for suffix, used in ((".br", self.use_brotli), (".gz", self.use_gzip)) if used]
        mtime = os.stat(path).st_mtime
        if copies and all(os.path.exists(copy) and os.stat(copy).st_mtime == mtime for copy in copies):
            return copies
        return super().compress(path)


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed names, brotli and gzip copies, a manifest; `sourceMappingURL` comments are not rewritten.

    The vendored GraphiQL files (static/graphiql/) point at source maps that are not vendored: rewriting
    those comments would make `collectstatic` fail on the missing maps. Browsers fetch maps only with
    developer tools open.
    """

    patterns = tuple(
        (extension, tuple(p for p in patterns if not _names_source_map(p)))
        for extension, patterns in CompressedManifestStaticFilesStorage.patterns
    )

    def create_compressor(self, **kwargs):
        return ReusingCompressor(**kwargs)
