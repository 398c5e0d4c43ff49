"""wsgi.file_wrapper (also mod_wsgi.FileWrapper)."""


class FileWrapper:
    """wsgi.file_wrapper. The server sends a real file with Apache's file buckets (sendfile);
    any other file-like object is read in blocks through iteration. (The native side recognises
    this exact type among response iterables.) Named mod_wsgi.FileWrapper, as under mod_wsgi."""

    __module__ = 'mod_wsgi'

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, 'close'):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration
