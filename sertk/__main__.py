from sertk.cli import main

main()
