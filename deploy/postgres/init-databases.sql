-- One database per service: no service can read another's tables.
CREATE DATABASE cards;
CREATE DATABASE claims;
CREATE DATABASE notifications;
