"""The cards service's SQL, one module per table family. Functions take the caller's
connection, so the caller's transaction spans the state change, its event and its audit."""
