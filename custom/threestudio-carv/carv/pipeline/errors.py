"""The one exception type for mistakes a user can fix; the command line prints it on one line, no traceback."""


class UserError(Exception):
    """A bad prompt, config key or value, missing teacher or judge, unwritable folder: fixable by the user."""
