"""Everything that leaves the case: exports for other tools, the HTML report, custody exports."""
