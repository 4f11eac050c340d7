# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type every virtkit.guests helper raises for the user to read."""

from __future__ import annotations


class VirtkitError(Exception):
    """A failure explained in one line: which guest, which operation, the likely cause.

    Modules turn it into ``fail_json(msg=str(err))``; no traceback reaches the user.
    """

    def __init__(self, message, **details):
        # Keep the message to one line whatever the underlying tool printed.
        message = ' '.join(str(message).split())
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self):
        return self.message
