from gofer.cli import main

raise SystemExit(main())
