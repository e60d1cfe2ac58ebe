"""Jinja templates for chat messages and web payloads, compiled once and rendered in a sandbox.

Public API::

    compile_template(source, *, where, mode, limits=Limits()) -> Template
    Template.render(variables) -> str
    compile_payload(mapping, *, positions, mode="json", limits=Limits()) -> PayloadTemplate
    PayloadTemplate.render(variables) -> Any          # JSON-ready
    event_variables(event, *, webhook_id, webhook_name) -> Variables
    batch_variables(events, *, webhook_id, webhook_name) -> Variables
    sample_context(event_name, *, bare=False) -> Variables
    check(template, event_names, *, per_batch=False, item=None) -> list[TemplateError]
    Where(file, line, column); TemplateError(message, file, line, column)
    Places: template path in the document -> (line, column), recorded at load

**Variables**: every field of `Event` (empty when the event lacks it), `webhook` (`.id`,
`.name`), `events` (the list of events: this one, or the batch) and `count`. A template
is rendered for each event (`event_variables`); only a web channel's `envelope` is
rendered for a batch (`batch_variables`), where the event fields themselves are empty.
Any other name is an error when the template is compiled. `metadata.key` is empty when
the event has no such key. See values.py.

**Errors**: one type, `TemplateError`, printed `path:line:col: message`: the template's
position in its file (`Where`) plus the line (and, for names, filters and attributes, the
column) in the template. Syntax errors, unknown names, filters and zones, and what the
sandbox refuses are found at compile time; what depends on the event at render time, at
the line it happened on.

**Filters** (filters.py): Jinja's usual ones that cannot blow up, plus `datetime(format,
zone)`, `domain`, `int`, `float`, `bool` and `json`.

**Escaping** (escaping.py): per `Mode` (json, text, slack, telegram_html,
telegram_markdown, discord, teams), every value is escaped for its service; the
template's own text never is.

**Sandbox** (sandbox.py) and **limits** (limits.py): no attribute outside an allow-list,
no I/O, and every render bounded in time (50 ms), output (64 KiB) and the size of what it
makes on the way (16 x output).
"""

from mailhooks.templates.compiler import Template, compile_template
from mailhooks.templates.errors import NO_PLACES, Places, TemplateError, Where
from mailhooks.templates.escaping import MODES, Mode
from mailhooks.templates.filters import FILTERS
from mailhooks.templates.limits import Limits
from mailhooks.templates.payload import PayloadTemplate, Positions, compile_payload
from mailhooks.templates.samples import check, sample_context, sample_payload
from mailhooks.templates.values import VARIABLES, Variables, batch_variables, event_variables

__all__ = [
    "FILTERS",
    "MODES",
    "NO_PLACES",
    "VARIABLES",
    "Limits",
    "Mode",
    "PayloadTemplate",
    "Places",
    "Positions",
    "Template",
    "TemplateError",
    "Variables",
    "Where",
    "batch_variables",
    "check",
    "compile_payload",
    "compile_template",
    "event_variables",
    "sample_context",
    "sample_payload",
]
