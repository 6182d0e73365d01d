"""What the app sees and the hand-off between threads: the environ and proxy-header rewriting
[loop], the app call [thread], the bridge and the bounded pool [both]. Nothing here touches a
socket; nothing here reads the configuration (values are passed in)."""
