// Library enhancements (drawer, view toggle). Every page works without this file.
