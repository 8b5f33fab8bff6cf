module lookalike

go 1.26
