"""The core: function definitions, the safe parser, and the traced-value protocol."""
