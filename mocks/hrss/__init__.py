"""Mock 人社 (human resources and social security) department: SOAP 1.1 over a static WSDL, see app.py."""
