"""人社 (HRSS, human resources and social security) adapter: SOAP 1.1 via zeep.

Employment registration (就业登记), employee and resident pension enrolment, social-security card application and
personnel-archive transfer, each with its status query and the department's signed callbacks.
"""
