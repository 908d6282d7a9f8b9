"""What both OVSDB databases the controller reads share: watching their rows with ovsdbapp's
row events, and one connection per API object (every host's Open_vSwitch, the northbound
database)."""
