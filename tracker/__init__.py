"""feqa tracker."""
